-- Gold features of use case `tiny`: one row per reading of the interval.
-- Views: `readings` and `site_weather` hold the interval's validated silver rows (event_date in the
-- interval); `devices` holds the reference table. Only what is known at reading time is a feature;
-- the outcome `failed` is the label.
SELECT
  r.reading_id,
  r.reading_date,
  r.device_id,
  r.site,
  d.model,
  r.hour,
  r.temperature,
  r.vibration,
  r.load_pct,
  CASE WHEN d.installed_year IS NULL THEN NULL ELSE year(r.reading_date) - d.installed_year END AS device_age,
  w.outdoor_temp,
  w.humidity,
  month(r.reading_date) AS month,
  r.failed
FROM readings AS r
LEFT JOIN site_weather AS w
  ON w.site = r.site AND w.reading_date = r.reading_date
LEFT JOIN devices AS d
  ON d.device_id = r.device_id
