using System.Buffers.Binary;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Reservations;
using TcmuSharedVolume.Volumes;
using Xunit.Abstractions;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// CDBs, random and mutated-valid, with random data-out, on four paths of one volume while
/// reservations are in force: registrations and a persistent reservation of each type, or an
/// SPC-2 RESERVE holder. Every answer is well formed; READ and WRITE class commands get
/// RESERVATION CONFLICT exactly when the access rules (written here from SPC-4's table of
/// commands allowed in the presence of each reservation type, not from the engine) say so;
/// and no command outside PR OUT / RESERVE / RELEASE changes the reservation table.
/// </summary>
public sealed class CommandSetFuzzTests(ITestOutputHelper output)
{
    // Paths: A on port 1 (holder or SPC-2 holder), B on port 1 (registered), C on port 1
    // (not registered), A on port 2 (registered on port 1 only, without ALL_TG_PT: another I_T nexus).
    private const int A = 0, B = 1, C = 2, A2 = 3;

    /// <summary>Access classes of SPC-4/SBC-3's tables of commands allowed in the presence of
    /// reservations; <see cref="Unclassified"/> commands (MODE SENSE, SEND DIAGNOSTIC, PREVENT
    /// ALLOW MEDIUM REMOVAL, service actions of 9Eh...) depend on fields and get no RC assertion.</summary>
    private enum Access { Read, Write, Always, Unclassified }

    // READ(6/10/12/16), VERIFY(10/16): "read" rows — allowed under WRITE EXCLUSIVE types.
    private static readonly byte[] ReadOps = [0x08, 0x28, 0xA8, 0x88, 0x2F, 0x8F];
    // WRITE(6/10/12/16), WRITE SAME(10/16), COMPARE AND WRITE, WRITE AND VERIFY(10/16),
    // SYNCHRONIZE CACHE(10/16), UNMAP: conflict for non-holders under WRITE EXCLUSIVE types.
    private static readonly byte[] WriteOps = [0x0A, 0x2A, 0xAA, 0x8A, 0x41, 0x93, 0x89, 0x2E, 0x8E, 0x35, 0x91, 0x42];
    // TEST UNIT READY, REQUEST SENSE, INQUIRY, READ CAPACITY(10), REPORT LUNS, PERSISTENT
    // RESERVE IN: allowed under every type.
    private static readonly byte[] AlwaysOps = [0x00, 0x03, 0x12, 0x25, 0xA0, 0x5E];
    // MAINTENANCE IN (REPORT SUPPORTED OPERATION CODES and friends) and MODE SENSE follow the
    // ALLOW COMMANDS rules that REPORT CAPABILITIES states, so they are left unclassified.
    private static readonly byte[] OtherOps = [0x1A, 0x5A, 0x9E, 0x1D, 0x1E, 0x15, 0x55, 0xA3];
    private static readonly byte[] ReservationOps = [0x5F, 0x16, 0x17, 0x56, 0x57]; // change the table by design

    private sealed class World : IDisposable
    {
        private readonly Scsi.ScsiFixture _f = new();
        public readonly VolumePath[] Paths;
        public readonly Volume Volume;
        public readonly PersistentReservationType Type; // None: the SPC-2 world
        public readonly bool[] Registered = new bool[4];

        public World(PersistentReservationType type)
        {
            Volume = _f.CreateVolume(1 << 20);
            Paths =
            [
                Volume.AddPath("a", Nexus("iqn.2024-01.test:a", 1)),
                Volume.AddPath("b", Nexus("iqn.2024-01.test:b", 1)),
                Volume.AddPath("c", Nexus("iqn.2024-01.test:c", 1)),
                Volume.AddPath("a2", Nexus("iqn.2024-01.test:a", 2)),
            ];
            Type = type;
            if (type == PersistentReservationType.None)
            {
                Assert.Equal(ScsiStatus.Good, Run(Paths[A], [0x16, 0, 0, 0, 0, 0]).Status); // RESERVE(6)
            }
            else
            {
                Good(Out(Paths[A], PrTestKit.PrOutCdb(0, 0, 24), PrTestKit.BasicList(0, 0xA)));
                Good(Out(Paths[B], PrTestKit.PrOutCdb(0, 0, 24), PrTestKit.BasicList(0, 0xB)));
                Good(Out(Paths[A], PrTestKit.PrOutCdb(1, (byte)type, 24), PrTestKit.BasicList(0xA, 0)));
                Registered[A] = Registered[B] = true;
            }
            foreach (var p in Paths) while (Volume.Reservations.TryTakeUnitAttention(p.Nexus, out _)) { }
        }

        private static void Good(Scsi.Result r) => Assert.True(r.Status == ScsiStatus.Good, $"setup: {r.Status} {r.Code}");

        /// <summary>SPC-4 "Reservations": what each path may do under this world's reservation.</summary>
        public bool Allowed(int path, Access access)
        {
            if (access == Access.Always) return true;
            if (Type == PersistentReservationType.None)
                return path == A; // SPC-2 RESERVE: the whole logical unit, for one I_T nexus
            bool holder = Type is PersistentReservationType.WriteExclusiveAllRegistrants or PersistentReservationType.ExclusiveAccessAllRegistrants
                ? Registered[path] : path == A;
            if (holder) return true;
            return (Type, access) switch
            {
                (PersistentReservationType.WriteExclusive, Access.Read) => true,
                (PersistentReservationType.WriteExclusive, Access.Write) => false,
                (PersistentReservationType.ExclusiveAccess, _) => false,
                (PersistentReservationType.WriteExclusiveRegistrantsOnly or PersistentReservationType.WriteExclusiveAllRegistrants, Access.Read) => true,
                (PersistentReservationType.WriteExclusiveRegistrantsOnly or PersistentReservationType.WriteExclusiveAllRegistrants, Access.Write) => Registered[path],
                _ => Registered[path], // EARO / EAAR
            };
        }

        public void Dispose() => _f.Dispose();
    }

    private static string Fingerprint(VolumeReservations pr)
    {
        var s = pr.Snapshot();
        return $"{s.Generation}|{s.Aptpl}|{s.Type}|{s.Holder}|{s.Spc2Holder}|" + string.Join(";", s.Registrations);
    }

    private static byte[] ValidCdb(Random rng, byte op)
    {
        int length = CdbReader.LengthOfGroup(op);
        if (length == 0) length = 16;
        var cdb = new byte[length];
        cdb[0] = op;
        if (op == 0xA3) { cdb[1] = 0x0C; cdb[9] = 0xFF; return cdb; } // REPORT SUPPORTED OPERATION CODES
        // A short transfer inside the 2048-block volume.
        switch (length)
        {
            case 6:
                cdb[3] = (byte)rng.Next(0, 64);
                cdb[4] = (byte)(op is 0x08 or 0x0A ? rng.Next(1, 5) : rng.Next(0, 255));
                break;
            case 10:
                BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)rng.Next(0, 2040));
                BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), (ushort)rng.Next(0, 5));
                break;
            case 12:
                BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)rng.Next(0, 2040));
                BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(6), (uint)rng.Next(0, 5));
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)rng.Next(0, 2040));
                BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), (uint)rng.Next(0, 5));
                if (op == 0x89) { cdb[10] = cdb[11] = cdb[12] = 0; cdb[13] = (byte)rng.Next(0, 2); } // COMPARE AND WRITE
                break;
        }
        return cdb;
    }

    [Fact]
    public void CdbsOnFourPathsUnderReservationsGetWellFormedAnswers_ConflictExactlyPerTheAccessRules()
    {
        int cases = FuzzBudget.Cases();
        PersistentReservationType[] worlds =
        [
            PersistentReservationType.WriteExclusiveRegistrantsOnly, PersistentReservationType.ExclusiveAccess,
            PersistentReservationType.None, PersistentReservationType.WriteExclusive,
            PersistentReservationType.ExclusiveAccessRegistrantsOnly, PersistentReservationType.WriteExclusiveAllRegistrants,
            PersistentReservationType.ExclusiveAccessAllRegistrants,
        ];
        World? world = null;
        int conflicts = 0, goods = 0, checks = 0;
        try
        {
            FuzzBudget.Run(output, "CommandSet.Execute (CDBs on 4 paths under reservations)", cases, FuzzBudget.Seed(6606), (rng, i) =>
            {
                if (i % 2000 == 0)
                {
                    world?.Dispose();
                    world = new World(worlds[i / 2000 % worlds.Length]);
                }
                var w = world!;
                int path = rng.Next(4);

                Access access;
                byte op;
                switch (rng.Next(10))
                {
                    case < 3: op = ReadOps[rng.Next(ReadOps.Length)]; break;
                    case < 6: op = WriteOps[rng.Next(WriteOps.Length)]; break;
                    case < 8: op = AlwaysOps[rng.Next(AlwaysOps.Length)]; break;
                    case < 9: op = OtherOps[rng.Next(OtherOps.Length)]; break;
                    default: op = (byte)rng.Next(256); break;
                }
                if (ReservationOps.Contains(op)) op = 0x00;
                access = ReadOps.Contains(op) ? Access.Read : WriteOps.Contains(op) ? Access.Write
                    : AlwaysOps.Contains(op) ? Access.Always : Access.Unclassified;
                var cdb = ValidCdb(rng, op);
                bool mutated = rng.Next(3) == 0;
                if (mutated)
                    for (int f = rng.Next(1, 4); f > 0; f--)
                    {
                        int at = rng.Next(1, cdb.Length);
                        cdb[at] = (byte)rng.Next(256);
                    }
                int dataLength = rng.Next(3) switch { 0 => 0, 1 => 512 * rng.Next(1, 5), _ => rng.Next(0, 4200) };
                using var data = new Scsi.NativeData(dataLength, rng.Next(1, 5));
                if (dataLength > 0)
                {
                    var bytes = new byte[dataLength];
                    rng.NextBytes(bytes);
                    if (rng.Next(2) == 0) Array.Clear(bytes, 0, Math.Min(8, dataLength));
                    data.Buffer.CopyFrom(0, bytes);
                }
                bool descriptor = rng.Next(2) == 0;

                string before = Fingerprint(w.Volume.Reservations);
                var r = Run(w.Paths[path], cdb, data, descriptor);

                // Well formed: GOOD/CONFLICT without sense, CHECK CONDITION with sense of the asked format.
                Assert.True(r.DataInLength <= dataLength, $"{Convert.ToHexString(cdb)}: {r.DataInLength} bytes into a {dataLength}-byte buffer");
                SenseCode sense = SenseCode.NoSense;
                switch (r.Status)
                {
                    case ScsiStatus.Good: goods++; Assert.Empty(r.Sense); break;
                    case ScsiStatus.ReservationConflict: conflicts++; Assert.Empty(r.Sense); break;
                    case ScsiStatus.CheckCondition:
                        checks++;
                        Assert.True(r.Sense.Length >= 8);
                        Assert.Equal(descriptor ? 0x72 : 0x70, r.Sense[0] & 0x7F);
                        sense = SenseData.Parse(r.Sense);
                        Assert.True(sense.Key is SenseKey.IllegalRequest or SenseKey.Miscompare or SenseKey.UnitAttention
                            or SenseKey.NotReady or SenseKey.DataProtect or SenseKey.MediumError or SenseKey.HardwareError, $"sense {sense}");
                        break;
                    default:
                        Assert.Fail($"status {r.Status}");
                        break;
                }

                // Non-PR commands never change the table.
                Assert.Equal(before, Fingerprint(w.Volume.Reservations));

                // RESERVATION CONFLICT exactly per the access rules. A mutated CDB may be refused
                // for a bad field either before or after the reservation check (SPC-4 leaves the
                // order open), and a pending unit attention is reported first.
                // Under an SPC-2 reservation only INQUIRY, REPORT LUNS and REQUEST SENSE (and RELEASE)
                // surely pass for another initiator (SPC-2 "Reservations"); the rest of the "always"
                // rows are persistent-reservation rows.
                if (w.Type == PersistentReservationType.None && op is not (0x12 or 0xA0 or 0x03) && access == Access.Always)
                    access = Access.Unclassified;
                if (access == Access.Unclassified) return;
                bool allowed = w.Allowed(path, access);
                string what = $"{Convert.ToHexString(cdb)} on path {path} under {w.Type}";
                if (allowed)
                    Assert.True(r.Status != ScsiStatus.ReservationConflict, $"{what}: conflict where the rules allow it");
                else if (!mutated)
                    Assert.True(r.Status == ScsiStatus.ReservationConflict || sense.Key == SenseKey.UnitAttention, $"{what}: {r.Status} {sense} where the rules forbid it");
                else
                    Assert.True(r.Status == ScsiStatus.ReservationConflict || sense.Key is SenseKey.IllegalRequest or SenseKey.UnitAttention, $"{what}: {r.Status} {sense} where the rules forbid it");
            });
        }
        finally
        {
            world?.Dispose();
        }
        output.WriteLine($"GOOD {goods}, RESERVATION CONFLICT {conflicts}, CHECK CONDITION {checks}");
        Assert.True(goods > cases / 10 && conflicts > cases / 20, $"GOOD {goods}, RESERVATION CONFLICT {conflicts}, CHECK CONDITION {checks}");
    }
}
