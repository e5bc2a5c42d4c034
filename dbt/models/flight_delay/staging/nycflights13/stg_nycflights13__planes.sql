select
    {{ hash_pii('tailnum') }} as tailnum_hash,
    year as year_built,
    seats,
    engines,
    manufacturer,
    model,
    engine as engine_type
from {{ source('nycflights13', 'planes') }}
