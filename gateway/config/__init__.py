"""What the admins configured: settings, customers and the rules file, validated at load."""
