-- Each funnel stage holds at most as many sessions as the stage before it.
select *
from {{ ref('fct_conversion_funnel_daily') }}
where product_view_sessions > sessions
    or add_to_cart_sessions > product_view_sessions
    or checkout_sessions > add_to_cart_sessions
    or purchase_sessions > checkout_sessions
