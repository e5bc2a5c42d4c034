with source as (
    select * from {{ source('nycflights13', 'weather') }}
    {% if var('ds') is not none %}
    where logical_date = cast('{{ var("ds") }}' as date)
    {% endif %}
)

select
    origin,
    time_hour as observed_at,
    logical_date as observation_date,
    temp as temperature_f,
    dewp as dewpoint_f,
    humid as humidity_pct,
    wind_dir as wind_direction_deg,
    wind_speed as wind_speed_mph,
    wind_gust as wind_gust_mph,
    precip as precipitation_in,
    pressure as pressure_mb,
    visib as visibility_mi
from source
