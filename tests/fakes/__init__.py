"""Local fakes of providers' HTTP APIs, served on loopback for tests."""
