{#-
  Where models land.
  DuckDB: one schema per layer (staging, intermediate, marts) in the warehouse file.
  Athena: everything in the target schema, the Glue marts database (<prefix>_marts): the lake's Glue
  databases are bronze/silver/marts only (terraform/modules/catalog), so staging and intermediate
  views live next to the marts.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
  {{ return(adapter.dispatch('generate_schema_name', 'ecommerce_lakehouse')(custom_schema_name, node)) }}
{%- endmacro %}

{% macro default__generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema | trim }}
  {%- else -%}
    {{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}

{% macro athena__generate_schema_name(custom_schema_name, node) -%}
  {{ target.schema | trim }}
{%- endmacro %}
