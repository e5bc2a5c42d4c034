-- Landed flights and late arrivals per carrier and route and local landing date:
-- the building block of the trailing delay rates.
select
    cast({{ utc_to_local('landed_at', "'" ~ var('timezone') ~ "'") }} as date) as landed_date,
    carrier,
    route,
    count(*) as landed_flights,
    sum(case when is_late_arrival then 1 else 0 end) as late_arrivals
from {{ ref('int_flights_landed') }}
where landed_at is not null
group by 1, 2, 3
