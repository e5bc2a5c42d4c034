with source as (
    select * from {{ source('nycflights13', 'flights') }}
    {% if var('ds') is not none %}
    -- Flights that depart on the logical date or within the long window before it:
    -- enough for the day's marts and for every trailing rate that ends on it.
    where logical_date between cast('{{ var("ds") }}' as date) - {{ days(var('long_window_days') + 1) }}
                           and cast('{{ var("ds") }}' as date)
    {% endif %}
),

renamed as (
    select
        cast(logical_date as varchar) || '-' || carrier || cast(flight as varchar) || '-' || origin
            as flight_id,
        logical_date as flight_date,
        carrier,
        flight as flight_number,
        origin,
        dest,
        origin || '-' || dest as route,
        {{ hash_pii('tailnum') }} as tailnum_hash,
        sched_dep_time as sched_dep_hhmm,
        sched_arr_time as sched_arr_hhmm,
        cast(logical_date as timestamp) + {{ hhmm_to_interval('sched_dep_time') }}
            as scheduled_departure_local,
        time_hour + cast(minute as integer) * interval '1 minute' as scheduled_departure_at,
        dep_delay as dep_delay_minutes,
        arr_delay as arr_delay_minutes,
        air_time as air_time_minutes,
        distance as distance_miles,
        dep_time is null as is_cancelled
    from source
)

select * from renamed
