"""The peers a target is compared with: other implementations on the same servers."""
