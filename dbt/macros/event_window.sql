{#
  The trailing window a stream of the spec keeps (its `window`: length, count, means), as dbt computes it for
  training: for each event of `events` (a query with `key`, `flight_date`, the event instant `event_at` and the
  averaged column `value`), the count and mean of `value` over the key's events in [event_at - hours, event_at]. Events at
  the same instant share their window: one row per key and instant (`feature_timestamp`). Built for the
  logical date ds: its flights' events, and the day before's that happen on ds (their windows now hold ds's
  first events too).
#}
{% macro event_window(events, key, hours, count_name, mean_name) %}
with events as (
    {{ events }}
),

windowed as (
    select
        {{ key }},
        flight_date,
        event_at as feature_timestamp,
        count(*) over recent as {{ count_name }},
        avg(value) over recent as {{ mean_name }}
    from events
    window recent as (
        partition by {{ key }} order by event_at
        range between interval '{{ hours }} hours' preceding and current row
    )
)

select distinct
    {{ key }},
    feature_timestamp,
    cast({{ count_name }} as bigint) as {{ count_name }},
    cast({{ mean_name }} as double precision) as {{ mean_name }}
from windowed
{% if var('ds') is not none %}
where flight_date = cast('{{ var("ds") }}' as date)
   or cast({{ utc_to_local('feature_timestamp', "'" ~ var('timezone') ~ "'") }} as date) = cast('{{ var("ds") }}' as date)
{% endif %}
{% endmacro %}
