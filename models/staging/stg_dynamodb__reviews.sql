with source as (
    select * from {{ source('dynamodb', 'reviews') }}
)

select
    cast(review_id as varchar) as review_id,
    cast(product_id as bigint) as product_id,
    cast(customer_id as bigint) as customer_id,
    cast(rating as integer) as rating,
    cast(title as varchar) as title,
    cast(body as varchar) as body,
    {{ to_utc_timestamp('created_at') }} as created_at,
    {{ to_utc_timestamp('updated_at') }} as updated_at
from source
