-- Each flight with the instant its outcome became known: the actual arrival, in UTC,
-- from the scheduled arrival (local time at the destination) plus the arrival delay.
-- Cancelled and diverted flights have no arrival and no label.
with flights as (
    select * from {{ ref('stg_nycflights13__flights') }}
),

destination_zones as (
    select airport_code, time_zone from {{ ref('stg_nycflights13__airports') }}
    union all
    select faa as airport_code, tzone as time_zone from {{ ref('airport_timezones') }}
),

scheduled as (
    select
        flights.*,
        destination_zones.time_zone as dest_time_zone,
        -- A scheduled arrival clock earlier than the departure clock means the next day.
        cast(flight_date as timestamp)
            + case when sched_arr_hhmm < sched_dep_hhmm then {{ days(1) }} else {{ days(0) }} end
            + {{ hhmm_to_interval('sched_arr_hhmm') }} as scheduled_arrival_local
    from flights
    left join destination_zones on flights.dest = destination_zones.airport_code
)

select
    *,
    {{ local_to_utc('scheduled_arrival_local', 'dest_time_zone') }} as scheduled_arrival_at,
    case when arr_delay_minutes is not null
        then {{ local_to_utc('scheduled_arrival_local', 'dest_time_zone') }}
             + cast(arr_delay_minutes as integer) * interval '1 minute'
    end as landed_at,
    case when arr_delay_minutes is not null
        then arr_delay_minutes > {{ var('late_threshold_minutes') }}
    end as is_late_arrival
from scheduled
