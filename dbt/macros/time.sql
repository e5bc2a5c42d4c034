{# An HHMM clock integer (e.g. 1545) as an interval since midnight. #}
{% macro hhmm_to_interval(column) -%}
    (cast(floor({{ column }} / 100.0) as integer) * interval '1 hour'
     + cast(mod({{ column }}, 100) as integer) * interval '1 minute')
{%- endmacro %}

{# Local wall-clock timestamp in time zone `tz` (a column or quoted literal) to an absolute instant. #}
{% macro local_to_utc(local_timestamp, tz) -%}
    (cast({{ local_timestamp }} as timestamp) at time zone {{ tz }})
{%- endmacro %}

{# Days as an interval, for date arithmetic that both DuckDB and PostgreSQL accept. #}
{% macro days(n) -%}
    ({{ n }} * interval '1 day')
{%- endmacro %}

{# True when the model is built for one logical date (var ds) and has rows already. #}
{% macro building_one_day() -%}
    {{ return(is_incremental() and var('ds') is not none) }}
{%- endmacro %}

{# An absolute instant as the wall-clock timestamp of time zone `tz`. #}
{% macro utc_to_local(instant, tz) -%}
    ({{ instant }} at time zone {{ tz }})
{%- endmacro %}

{# The as-of dates of daily snapshots: the logical date ds and the day after it (the snapshot serving
   reads once ds is over), or, building every date, each date of `relation`'s `date_column` and the day
   after the last. #}
{% macro snapshot_dates(relation, date_column) -%}
    {% if var('ds') is not none %}
    select cast('{{ var("ds") }}' as date) as as_of_date
    union all
    select cast(cast('{{ var("ds") }}' as date) + {{ days(1) }} as date)
    {% else %}
    select distinct {{ date_column }} as as_of_date from {{ relation }}
    union
    select cast(max({{ date_column }}) + {{ days(1) }} as date) from {{ relation }}
    {% endif %}
{%- endmacro %}
