{#-
  Portable SQL: one call site in the models, one implementation per adapter where DuckDB and
  Athena (Trino) differ. Dispatched with adapter.dispatch; `default__` is the DuckDB-compatible form.
  Conventions: every timestamp in the models is a naive `timestamp` holding UTC; dates are UTC dates.
-#}

{#- ISO-8601 text with offset ('2026-11-23T10:15:00.123456Z', Debezium's timestamptz) -> UTC timestamp. -#}
{% macro iso_to_timestamp(column) -%}
  {{ return(adapter.dispatch('iso_to_timestamp', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__iso_to_timestamp(column) -%}
  timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro athena__iso_to_timestamp(column) -%}
  {#- _nanos keeps the microseconds (from_iso8601_timestamp truncates to milliseconds) -#}
  cast(from_iso8601_timestamp_nanos({{ column }}) at time zone 'UTC' as timestamp(6))
{%- endmacro %}


{#- A timestamp column (dlt writes timestamp(us, UTC)) -> UTC timestamp without zone. -#}
{% macro to_utc_timestamp(column) -%}
  {{ return(adapter.dispatch('to_utc_timestamp', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(column) -%}
  timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro athena__to_utc_timestamp(column) -%}
  {#- Delta timestamps are instants; Athena shows them as UTC timestamps (with or without zone) -#}
  cast({{ column }} as timestamp(6))
{%- endmacro %}


{#- Array of JSON objects (text) -> one row per element: `json_array_rows(relation, key columns,
    json column, {field: sql type})` selects the keys, `position` (1-based) and the fields. -#}
{% macro json_array_rows(relation, keys, json_column, fields) -%}
  {{ return(adapter.dispatch('json_array_rows', 'ecommerce_lakehouse')(relation, keys, json_column, fields)) }}
{%- endmacro %}

{% macro default__json_array_rows(relation, keys, json_column, fields) -%}
  select
      {% for key in keys %}{{ key }}, {% endfor %}
      position,
      {% for name in fields %}element.{{ name }} as {{ name }}{{ ", " if not loop.last }}{% endfor %}
  from (
      select
          {% for key in keys %}{{ key }}, {% endfor %}
          unnest(elements) as element,
          generate_subscripts(elements, 1) as position
      from (
          select
              {% for key in keys %}{{ key }}, {% endfor %}
              from_json({{ json_column }}, '[{{ '{' }}{% for name, type in fields.items() %}"{{ name }}": "{{ type | upper }}"{{ ", " if not loop.last }}{% endfor %}{{ '}' }}]') as elements
          from {{ relation }}
      ) as parsed
  ) as exploded
{%- endmacro %}

{% macro athena__json_array_rows(relation, keys, json_column, fields) -%}
  select
      {% for key in keys %}source.{{ key }}, {% endfor %}
      elements.position,
      {% for name in fields %}elements.{{ name }}{{ ", " if not loop.last }}{% endfor %}
  from {{ relation }} as source
  cross join unnest(
      cast(json_parse({{ json_column }}) as array(row({% for name, type in fields.items() %}{{ name }} {{ type }}{{ ", " if not loop.last }}{% endfor %})))
  ) with ordinality as elements ({% for name in fields %}{{ name }}, {% endfor %}position)
{%- endmacro %}


{#- UTC calendar date of a UTC timestamp. -#}
{% macro utc_date(timestamp_expr) -%}
  {{ return(adapter.dispatch('utc_date', 'ecommerce_lakehouse')(timestamp_expr)) }}
{%- endmacro %}

{% macro default__utc_date(timestamp_expr) -%}
  cast({{ timestamp_expr }} as date)
{%- endmacro %}


{#- A date column (or YYYY-MM-DD text) -> date; a plain cast keeps partition pruning. -#}
{% macro to_date(column) -%}
  {{ return(adapter.dispatch('to_date', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__to_date(column) -%}
  cast({{ column }} as date)
{%- endmacro %}


{#- Decimal string (Debezium numeric) -> exact decimal. -#}
{% macro to_decimal(column, precision=12, scale=2) -%}
  {{ return(adapter.dispatch('to_decimal', 'ecommerce_lakehouse')(column, precision, scale)) }}
{%- endmacro %}

{% macro default__to_decimal(column, precision, scale) -%}
  cast({{ column }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}


{#- Scalar at a JSON path of JSON text, as text (null when missing). -#}
{% macro json_text(column, path) -%}
  {{ return(adapter.dispatch('json_text', 'ecommerce_lakehouse')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
  json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{% macro athena__json_text(column, path) -%}
  json_extract_scalar({{ column }}, '{{ path }}')
{%- endmacro %}


{#- Whole seconds from one timestamp to another. -#}
{% macro seconds_between(start_expr, end_expr) -%}
  {{ return(adapter.dispatch('seconds_between', 'ecommerce_lakehouse')(start_expr, end_expr)) }}
{%- endmacro %}

{% macro default__seconds_between(start_expr, end_expr) -%}
  date_diff('second', {{ start_expr }}, {{ end_expr }})
{%- endmacro %}


{#- Division as double, null when the denominator is 0 or null (Trino would divide integers). -#}
{% macro safe_divide(numerator, denominator) -%}
  {{ return(adapter.dispatch('safe_divide', 'ecommerce_lakehouse')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
  (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}


{#- A date literal both engines accept. -#}
{% macro date_literal(value) -%}
  date '{{ value }}'
{%- endmacro %}
