namespace TcmuSharedVolume.Reservations;

/// <summary>
/// What survives a restart: registrations, the persistent reservation and the APTPL state.
/// Not the PRgeneration (it restarts at 0, SPC-4 5.12.3) and not SPC-2 reservations (released
/// by any reset). <see cref="HolderIndex"/> points into <see cref="Registrations"/> for non-AR
/// types (keys are not unique, so the holder is a registration, not a key); -1 otherwise.
/// </summary>
public sealed record PersistedReservations(
    bool Aptpl,
    IReadOnlyList<Registration> Registrations,
    PersistentReservationType Type,
    int HolderIndex)
{
    public static readonly PersistedReservations Empty = new(false, [], PersistentReservationType.None, -1);
}

/// <summary>Where a volume's reservation state is kept across restarts.</summary>
public interface IReservationStore
{
    /// <summary>The last committed state, or null when none was ever saved. Throws
    /// <see cref="ReservationStoreException"/> when stored state exists but cannot be read:
    /// starting empty would silently unfence every fenced node.</summary>
    PersistedReservations? Load();

    /// <summary>Makes <paramref name="state"/> durable before returning; throws on failure.</summary>
    void Save(PersistedReservations state);
}

/// <summary>The stored reservation state exists but is unreadable (corrupt, truncated, foreign).</summary>
public sealed class ReservationStoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// For tests and for volumes whose state need not survive the process: keeps the last saved
/// state in memory only, so a second engine on the same store sees what a restart would see.
/// </summary>
public sealed class InMemoryReservationStore : IReservationStore
{
    private PersistedReservations? _saved;

    public PersistedReservations? Load() => Volatile.Read(ref _saved);

    public void Save(PersistedReservations state) => Volatile.Write(ref _saved, state);
}
