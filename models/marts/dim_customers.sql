-- One row per current customer, with lifetime order figures and open carts.
with customers as (
    select * from {{ ref('stg_shop__customers') }}
),

orders as (
    select * from {{ ref('int_customers__orders') }}
),

shipping_addresses as (
    select
        customer_id,
        city,
        country,
        row_number() over (partition by customer_id order by address_id) as rank_in_customer
    from {{ ref('stg_shop__addresses') }}
    where address_kind = 'shipping'
),

cart_values as (
    select cart_id, sum(line_value) as cart_value
    from {{ ref('stg_dynamodb__cart_items') }}
    group by cart_id
),

carts as (
    select
        carts.customer_id,
        count(case when carts.cart_status = 'active' then carts.cart_id end) as active_carts,
        count(case when carts.cart_status = 'abandoned' then carts.cart_id end) as abandoned_carts,
        sum(case when carts.cart_status = 'active' then cart_values.cart_value end) as active_cart_value
    from {{ ref('stg_dynamodb__carts') }} as carts
    left join cart_values on carts.cart_id = cart_values.cart_id
    group by carts.customer_id
)

select
    customers.customer_id,
    customers.email,
    customers.first_name,
    customers.last_name,
    customers.first_name || ' ' || customers.last_name as full_name,
    customers.phone,
    customers.segment,
    customers.marketing_opt_in,
    customers.preferred_language,
    shipping_addresses.city as shipping_city,
    shipping_addresses.country as shipping_country,
    customers.created_at as signed_up_at,
    orders.first_order_at,
    orders.last_order_at,
    cast(coalesce(orders.lifetime_orders, 0) as bigint) as lifetime_orders,
    cast(coalesce(orders.lifetime_revenue, 0) as decimal(12, 2)) as lifetime_revenue,
    cast(coalesce(carts.active_carts, 0) as bigint) as active_carts,
    cast(coalesce(carts.abandoned_carts, 0) as bigint) as abandoned_carts,
    cast(coalesce(carts.active_cart_value, 0) as decimal(12, 2)) as active_cart_value,
    customers.updated_at
from customers
left join orders on customers.customer_id = orders.customer_id
left join shipping_addresses
    on customers.customer_id = shipping_addresses.customer_id
        and shipping_addresses.rank_in_customer = 1
left join carts on customers.customer_id = carts.customer_id
