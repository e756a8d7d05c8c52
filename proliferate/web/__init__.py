"""The issue browser: HTML pages, their guard, routes and templates."""
