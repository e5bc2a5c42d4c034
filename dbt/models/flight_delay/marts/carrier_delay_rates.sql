{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['carrier', 'as_of_date']) }}
{{ trailing_delay_rates('carrier') }}
