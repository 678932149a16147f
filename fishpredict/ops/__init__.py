"""Operations: replicas behind a real nginx (as processes or in containers), the
processes they run as, virtual environments."""
