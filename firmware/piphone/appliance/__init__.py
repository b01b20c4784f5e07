"""The phone itself: policy (phone.py), configuration, the service and its control socket."""
