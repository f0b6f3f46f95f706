{#
    Layers land in plainly named schemas (staging, intermediate, marts, seeds) instead of
    dbt's default "<target schema>_<custom schema>", so that the Python assets, the publish
    step and stewards find `marts.dim_customer` under a stable name.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
