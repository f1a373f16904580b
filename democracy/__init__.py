"""Democracy: wards, councillors, consultations, petitions, budgets, surgeries."""
