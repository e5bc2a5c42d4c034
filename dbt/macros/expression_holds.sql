{# Generic test: every row satisfies a boolean SQL expression. #}
{% test expression_holds(model, expression, column_name=none) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
