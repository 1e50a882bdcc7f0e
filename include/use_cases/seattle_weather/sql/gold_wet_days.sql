-- Gold: one row per day. `weather` holds the interval's validated silver rows.
-- Features are the day's temperatures and wind (and the calendar); precipitation is the outcome.
SELECT
  w.`date`                                   AS observed_on,
  w.temp_max,
  w.temp_min,
  w.temp_max - w.temp_min                    AS temp_range,
  w.wind,
  month(w.`date`)                            AS month,
  CASE WHEN month(w.`date`) IN (12, 1, 2) THEN 'winter'
       WHEN month(w.`date`) IN (3, 4, 5) THEN 'spring'
       WHEN month(w.`date`) IN (6, 7, 8) THEN 'summer'
       ELSE 'autumn' END                     AS season,
  w.precipitation,
  CASE WHEN w.precipitation IS NULL THEN NULL
       WHEN w.precipitation > 0 THEN 1
       ELSE 0 END                            AS wet
FROM weather AS w
