-- Cart headers; the cart's lines (DynamoDB list `items`, stored by dlt as JSON text) are
-- unnested in stg_dynamodb__cart_items.
with source as (
    select * from {{ source('dynamodb', 'carts') }}
)

select
    cast(cart_id as varchar) as cart_id,
    cast(customer_id as bigint) as customer_id,
    cast(status as varchar) as cart_status,
    cast(json_array_length(items) as integer) as cart_lines,
    {{ to_utc_timestamp('created_at') }} as created_at,
    {{ to_utc_timestamp('updated_at') }} as updated_at
from source
