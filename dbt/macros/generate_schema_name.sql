{# A model lands in the schema named after its layer, the folder under its use case's folder
   (models/<use case>/<staging|intermediate|marts>/...), not <target>_<layer>; seeds name theirs. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name -%}
        {{ custom_schema_name | trim }}
    {%- elif node.resource_type == 'model' and node.fqn | length > 3 -%}
        {{ node.fqn[2] | trim }}
    {%- else -%}
        {{ target.schema | trim }}
    {%- endif -%}
{%- endmacro %}
