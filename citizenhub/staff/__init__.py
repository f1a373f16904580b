"""The staff dashboard: roles, access control, MFA enforcement and the pages under /staff/."""
