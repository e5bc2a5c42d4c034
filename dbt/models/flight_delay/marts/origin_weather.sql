{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['origin', 'feature_timestamp']) }}
-- Hourly weather at the departure airport. An hour's observation is taken during that hour
-- (routine reports at about :51), so it is known at the end of the hour: feature_timestamp is
-- that instant, and a flight's prediction sees the latest observation known by its prediction
-- time (pipelines.features.request_time.prediction_time).
select
    origin,
    observed_at + interval '1 hour' as feature_timestamp,
    observed_at,
    observation_date,
    temperature_f,
    dewpoint_f,
    humidity_pct,
    wind_speed_mph,
    wind_gust_mph,
    precipitation_in,
    pressure_mb,
    visibility_mi
from {{ ref('stg_nycflights13__weather') }}
