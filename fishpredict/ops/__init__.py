"""Operations: replicas behind a real nginx, the processes they run as, virtual environments."""
