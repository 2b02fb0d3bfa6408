"""The motion prompt layer (Eq. 1-4), its C++ kernel and the motion representations."""
