{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['hour_of_day', 'is_workingday', 'as_of_date']) }}
-- Daily snapshots of each hour of the day's trailing demand: the mean riders of that hour over the 7
-- and 28 days before the snapshot, and over the days of the same kind (working day or not) among those
-- 28. An hour without a row had no rental: it counts as 0. A snapshot as of date D reads only days
-- before D, so an hour of D never sees its own count.
with hours as (
    select rental_date, hour_of_day, riders from {{ ref('stg_islp__bikeshare_hours') }}
),

days as (
    select distinct rental_date, is_workingday from {{ ref('stg_islp__bikeshare_hours') }}
),

as_of_dates as (
    {{ snapshot_dates('days', 'rental_date') }}
),

slots as (
    select hour_of_day, is_workingday
    from (select distinct hour_of_day from hours) as h
    cross join (select 0 as is_workingday union all select 1) as k
),

-- every (hour, day) of the 28 days before each snapshot, with 0 riders where the hour had no row
grid as (
    select slots.hour_of_day, slots.is_workingday as slot_kind, as_of_dates.as_of_date, days.rental_date,
           days.is_workingday as day_kind, coalesce(hours.riders, 0) as riders
    from slots
    cross join as_of_dates
    join days
        on days.rental_date < as_of_dates.as_of_date
        and days.rental_date >= as_of_dates.as_of_date - {{ days(28) }}
    left join hours
        on hours.rental_date = days.rental_date and hours.hour_of_day = slots.hour_of_day
),

windowed as (
    select
        hour_of_day,
        slot_kind as is_workingday,
        as_of_date,
        sum(case when rental_date >= as_of_date - {{ days(7) }} then riders else 0 end) as riders_7d,
        count(distinct case when rental_date >= as_of_date - {{ days(7) }} then rental_date end) as days_7d,
        sum(riders) as riders_28d,
        count(distinct rental_date) as days_28d,
        sum(case when day_kind = slot_kind then riders else 0 end) as riders_kind,
        count(distinct case when day_kind = slot_kind then rental_date end) as days_kind
    from grid
    group by 1, 2, 3
)

select
    hour_of_day,
    is_workingday,
    as_of_date,
    {{ local_to_utc('as_of_date', "'" ~ var('timezone') ~ "'") }} as feature_timestamp,
    cast(riders_7d as double precision) / nullif(days_7d, 0) as riders_same_hour_7d,
    cast(riders_28d as double precision) / nullif(days_28d, 0) as riders_same_hour_28d,
    cast(riders_kind as double precision) / nullif(days_kind, 0) as riders_same_hour_day_kind_28d
from windowed
