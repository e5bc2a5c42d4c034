{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['city', 'as_of_date']) }}
-- Daily snapshots of the city's demand: riders on the day before the snapshot and the mean daily
-- riders of the 7 days before it (from days before the snapshot date only).
with days as (
    select rental_date, sum(riders) as riders
    from {{ ref('stg_islp__bikeshare_hours') }}
    group by 1
),

as_of_dates as (
    {{ snapshot_dates('days', 'rental_date') }}
),

windowed as (
    select
        as_of_dates.as_of_date,
        sum(case when days.rental_date = as_of_dates.as_of_date - {{ days(1) }} then days.riders end)
            as riders_yesterday,
        sum(days.riders) as riders_7d,
        count(days.rental_date) as days_seen
    from as_of_dates
    left join days
        on days.rental_date < as_of_dates.as_of_date
        and days.rental_date >= as_of_dates.as_of_date - {{ days(7) }}
    group by 1
)

select
    'washington_dc' as city,
    as_of_date,
    {{ local_to_utc('as_of_date', "'" ~ var('timezone') ~ "'") }} as feature_timestamp,
    cast(riders_yesterday as double precision) as riders_yesterday,
    case when days_seen > 0 then cast(riders_7d as double precision) / days_seen end as riders_daily_7d
from windowed
