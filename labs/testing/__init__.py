"""Test support shared by every part of the lab: real servers, isolation, live apps, fuzzing."""
