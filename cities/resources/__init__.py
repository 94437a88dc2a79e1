"""The declared resources and the rules their fields follow."""
