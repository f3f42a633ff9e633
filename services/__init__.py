"""barometre: live barometer of French local governments on social networks."""
