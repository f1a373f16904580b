"""The unified inbox: staff pages over threads from every channel, at /staff/inbox/."""
