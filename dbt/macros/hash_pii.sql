{#
  Salted SHA-256 of personal data: sha256(salt || '|' || value), hex. The salt never
  appears in compiled SQL: DuckDB gets it through a UDF registered by the
  pipelines.features.duckdb_pii plugin, PostgreSQL through the session setting
  platform.pii_salt (PGOPTIONS), both set by the platform's dbt runner.
  pipelines.features.pii.hash_pii computes the same value in Python (serving).
#}
{% macro hash_pii(column) -%}
    {{ return(adapter.dispatch('hash_pii')(column)) }}
{%- endmacro %}

{% macro duckdb__hash_pii(column) -%}
    pii_hash({{ column }})
{%- endmacro %}

{% macro postgres__hash_pii(column) -%}
    case when {{ column }} is null then null
         else encode(sha256(convert_to(current_setting('platform.pii_salt') || '|' || {{ column }}, 'UTF8')), 'hex')
    end
{%- endmacro %}
