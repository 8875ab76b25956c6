"""The reports' evaluation protocols for product search and face verification, and their tables and plots."""
