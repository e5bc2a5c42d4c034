{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['route', 'as_of_date']) }}
with rates as (
    {{ trailing_delay_rates('route') }}
),

distances as (
    select route, max(distance_miles) as route_distance_miles
    from {{ ref('stg_nycflights13__flights') }}
    group by 1
)

select rates.*, distances.route_distance_miles
from rates
join distances on distances.route = rates.route
