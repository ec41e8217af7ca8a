"""Supply interruptions seen from the meters: collective standstill, dry alarms, communication outages."""
