-- Gold features: one row per scheduled flight of the interval.
-- Views: `flights` and `weather` hold the interval's validated silver rows (event_date in the
-- interval); `planes`, `airlines`, `airports` hold the reference tables.
--
-- Only what is known before departure is a feature: schedule, route, carrier, the origin's weather
-- at the scheduled departure hour (joined on origin and the UTC hour) and the plane's age.
-- Outcome columns (flight_status, arr_delay, is_delayed) are kept for training and monitoring.
-- Cancelled flights (no departure time) and diverted flights (departed, no arrival delay) keep
-- their row, so they are scored, but have a null label: "arrives 15+ minutes late" does not apply.
SELECT
  concat_ws('_', date_format(f.event_date, 'yyyyMMdd'), f.carrier, f.flight, f.origin,
            lpad(CAST(f.sched_dep_time AS STRING), 4, '0'))           AS flight_id,
  f.event_date                                                       AS flight_date,
  f.time_hour                                                        AS scheduled_departure_hour,
  f.carrier,
  f.flight,
  f.tailnum,
  f.origin,
  f.dest,
  f.month,
  dayofweek(f.event_date)                                            AS day_of_week,
  f.hour                                                             AS dep_hour,
  CAST(floor(f.sched_dep_time / 100) * 60 + f.sched_dep_time % 100 AS INT) AS sched_dep_minutes,
  CAST(floor(f.sched_arr_time / 100) * 60 + f.sched_arr_time % 100 AS INT) AS sched_arr_minutes,
  f.distance,
  w.temp,
  w.dewp,
  w.humid,
  w.wind_dir,
  w.wind_speed,
  w.wind_gust,
  w.precip,
  w.pressure,
  w.visib,
  CASE WHEN p.year IS NULL THEN NULL ELSE f.year - p.year END         AS plane_age,
  p.seats,
  p.engines,
  CASE WHEN f.dep_time IS NULL THEN 'cancelled'
       WHEN f.arr_delay IS NULL THEN 'diverted'
       ELSE 'arrived' END                                            AS flight_status,
  f.arr_delay,
  CASE WHEN f.dep_time IS NULL OR f.arr_delay IS NULL THEN NULL
       WHEN f.arr_delay >= 15 THEN 1
       ELSE 0 END                                                    AS is_delayed
FROM flights AS f
LEFT JOIN weather AS w
  ON w.origin = f.origin AND w.time_hour = f.time_hour
LEFT JOIN planes AS p
  ON p.tailnum = f.tailnum
