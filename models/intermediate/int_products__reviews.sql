-- Per product: review count and average rating.
select
    product_id,
    count(*) as reviews,
    avg(cast(rating as double)) as average_rating
from {{ ref('stg_dynamodb__reviews') }}
group by product_id
