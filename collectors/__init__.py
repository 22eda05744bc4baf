"""Collectors: pull each configured key's usage, events, jobs and pricing into the store."""
