{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='hour_id') }}
-- Entity and label table of the bike-rentals use case: one row per hour, with what a request
-- carries (the hour, the calendar, the weather forecast) and the riders counted once it ended.
select
    hour_id,
    'washington_dc' as city,
    hour_of_day,
    rental_date,
    hour_start_local,
    label_available_at,
    temp_c,
    feels_like_c,
    humidity_pct,
    wind_speed,
    weather_code,
    is_holiday,
    is_workingday,
    cast(riders as double precision) as riders
from {{ ref('stg_islp__bikeshare_hours') }}
{% if building_one_day() %}
where rental_date = cast('{{ var("ds") }}' as date)
{% endif %}
