"""Classification and priority rules: what kind of request it is and how urgent."""
