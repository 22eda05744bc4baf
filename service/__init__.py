"""The use cases between the store and analytics on one side and the faces (pages, CLIs, scheduled jobs)
on the other: each reads the store, calls pure analytics and returns typed results; the refresh stores them.
"""
