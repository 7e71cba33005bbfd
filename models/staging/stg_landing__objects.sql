-- One row per manifest record of the landing loaders (bronze/landing/_objects): for each object
-- version a 'staged' row written before its rows reach bronze (loaded_at null) and a 'loaded' row
-- after (a crash may repeat 'staged' rows). event_dates stays a list of the version's UTC event
-- days (feed days for partner feeds).
with source as (
    select * from {{ source('landing', 'objects') }}
)

select
    cast(kind as varchar) as object_kind,
    cast(object_key as varchar) as object_key,
    cast(object_etag as varchar) as object_etag,
    cast(status as varchar) as status,
    event_dates,
    cast(load_id as varchar) as load_id,
    {{ to_utc_timestamp('recorded_at') }} as recorded_at,
    {{ to_utc_timestamp('loaded_at') }} as loaded_at
from source
