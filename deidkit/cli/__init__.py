"""The command lines of both tools (what a person sees and answers); the library never prints."""
