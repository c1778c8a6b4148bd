"""Patient portal enrollment: invitations, PINs, registration, caregiver access, notifications."""
