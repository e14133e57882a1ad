using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// The reservation table of one volume, shared by all of its paths: SPC-4 persistent
/// reservations, SPC-2 RESERVE/RELEASE and the unit attentions they raise.
/// PLACEHOLDER: the engine lands with issue 4; until then reservation commands are refused.
/// </summary>
public sealed class VolumeReservations
{
    private readonly IReservationStore _store;
    private readonly Func<IEnumerable<ItNexus>> _nexuses;
    private readonly ICommandDrain _drain;

    /// <param name="nexuses">The bound nexuses of the volume's paths, now (for SPEC_I_PT, ALL_TG_PT, REGISTER AND MOVE).</param>
    public VolumeReservations(IReservationStore store, Func<IEnumerable<ItNexus>> nexuses, ICommandDrain drain)
    {
        _store = store;
        _nexuses = nexuses;
        _drain = drain;
    }

    /// <summary>PERSISTENT RESERVE IN/OUT, RESERVE(6/10), RELEASE(6/10) from <paramref name="issuer"/>.</summary>
    public void Execute(ItNexus? issuer, ScsiCommand command)
    {
        _ = _store; _ = _nexuses; _ = _drain; _ = issuer;
        command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
    }

    /// <summary>The reservation gate: may this nexus run this CDB now? Hot path: no allocation.</summary>
    public bool IsAllowed(ItNexus? nexus, ReadOnlySpan<byte> cdb) => true;

    /// <summary>Takes the oldest pending unit attention for the nexus, if any.</summary>
    public bool TryTakeUnitAttention(ItNexus? nexus, out SenseCode code)
    {
        code = default;
        return false;
    }

    /// <summary>Queues a unit attention for every nexus of the volume (e.g. CAPACITY DATA HAS CHANGED).</summary>
    public void AddUnitAttentionForAll(SenseCode code) { }

    /// <summary>LUN RESET from <paramref name="nexus"/>: breaks SPC-2 reservations, keeps persistent ones.</summary>
    public void LunReset(ItNexus? nexus) { }

    /// <summary>I_T nexus loss: releases an SPC-2 reservation held by the nexus.</summary>
    public void NexusLost(ItNexus nexus) { }
}

/// <summary>Where a volume's reservation state is kept across restarts.</summary>
public interface IReservationStore
{
}

/// <summary>For tests and for volumes whose state need not survive: keeps nothing.</summary>
public sealed class InMemoryReservationStore : IReservationStore
{
}
