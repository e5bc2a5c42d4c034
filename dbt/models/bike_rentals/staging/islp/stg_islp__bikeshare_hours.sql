-- One row per hour of rentals, in the units people use: degrees Celsius, percent, km/h, a weather code.
-- The source publishes temperature, feels-like, humidity and wind speed divided by their 2011 maxima.
with source as (
    select * from {{ source('islp', 'bikeshare_hours') }}
    {% if var('ds') is not none %}
    -- The logical date and the 28 days before it: enough for the day's marts and every trailing demand.
    where logical_date between cast('{{ var("ds") }}' as date) - {{ days(29) }} and cast('{{ var("ds") }}' as date)
    {% endif %}
)

select
    cast(logical_date as varchar) || 'T' || lpad(cast(hr as varchar), 2, '0') as hour_id,
    logical_date as rental_date,
    cast(hr as integer) as hour_of_day,
    cast(logical_date as timestamp) + cast(hr as integer) * interval '1 hour' as hour_start_local,
    {{ local_to_utc("cast(logical_date as timestamp) + (cast(hr as integer) + 1) * interval '1 hour'",
                    "'" ~ var('timezone') ~ "'") }} as label_available_at,
    temp * 41.0 as temp_c,
    atemp * 50.0 as feels_like_c,
    hum * 100.0 as humidity_pct,
    windspeed * 67.0 as wind_speed,
    case weathersit
        when 'clear' then 1
        when 'cloudy/misty' then 2
        when 'light rain/snow' then 3
        when 'heavy rain/snow' then 4
    end as weather_code,
    cast(holiday as integer) as is_holiday,
    cast(workingday as integer) as is_workingday,
    cast(bikers as integer) as riders,
    cast(casual as integer) as casual_riders,
    cast(registered as integer) as registered_riders
from source
