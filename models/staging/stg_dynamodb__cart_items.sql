-- One row per line of a cart: the JSON array `items` of the DynamoDB cart, unnested.
with source as (
    select cart_id, items from {{ source('dynamodb', 'carts') }}
),

lines as (
    {{ json_array_rows(
        'source', ['cart_id'], 'items',
        {'product_id': 'bigint', 'quantity': 'bigint', 'unit_price': 'double'}
    ) }}
)

select
    cast(cart_id as varchar) as cart_id,
    cast(position as integer) as line_number,
    product_id,
    cast(quantity as integer) as quantity,
    cast(round(unit_price, 2) as decimal(12, 2)) as unit_price,
    cast(round(quantity * unit_price, 2) as decimal(12, 2)) as line_value
from lines
