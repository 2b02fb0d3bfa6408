"""Statistics, Table 1 and its verdict, figures, attention scores and the report."""
