using System.Buffers.Binary;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// The reservation state file as the daemon finds it on disk: truncated, bit-flipped, random,
/// or re-checksummed after a change (what a buggy or hostile writer leaves). Every outcome is
/// either the whole state or a <see cref="ReservationStoreException"/> — never another exception
/// type, never part of a table.
/// </summary>
public sealed class FileReservationStoreFuzzTests(ITestOutputHelper output)
{
    private const string VolumeKey = "/srv/disks/shared.img";
    private const string Directory = "/var/lib/tsv/pr";

    /// <summary>Only what Load reads: the current and the previous file.</summary>
    private sealed class FileBytes : IReservationFileSystem
    {
        public readonly Dictionary<string, byte[]> Files = [];
        public byte[]? ReadAll(string path) => Files.TryGetValue(path, out var b) ? b.ToArray() : null;
        public bool Exists(string path) => Files.ContainsKey(path);
        public void CreateDirectory(string path) { }
        public IReservationFile Create(string path) => new Sink(this, path);
        public void Rename(string from, string to) { Files[to] = Files[from]; Files.Remove(from); }
        public void SyncDirectory(string path) { }
        public string? BootId => "boot-1";

        private sealed class Sink(FileBytes fs, string path) : IReservationFile
        {
            private readonly MemoryStream _data = new();
            public void Write(ReadOnlySpan<byte> data) => _data.Write(data);
            public void Sync() { }
            public void Dispose() => fs.Files[path] = _data.ToArray();
        }
    }

    private static ItNexus Nexus(Random rng) => new(
        new InitiatorPort(ProtocolId.Iscsi, $"iqn.1994-05.com.example:node{rng.Next(100)}", rng.Next(2) == 0 ? null : $"40000137{rng.Next(0x10000):x4}"),
        new TargetPort(ProtocolId.Iscsi, $"iqn.2003-01.org.linux-iscsi.t:vol,t,0x{rng.Next(1, 3):x4}", (ushort)rng.Next(1, 3)));

    private static PersistedReservations RandomState(Random rng)
    {
        int count = rng.Next(0, 6);
        var regs = new Registration[count];
        for (int i = 0; i < count; i++) regs[i] = new Registration(Nexus(rng), (ulong)rng.NextInt64(), rng.Next(2) == 0);
        byte[] types = [0, 1, 3, 5, 6, 7, 8];
        var type = count == 0 ? PersistentReservationType.None : (PersistentReservationType)types[rng.Next(types.Length)];
        int holder = type is PersistentReservationType.None || type.IsAllRegistrants() ? -1 : rng.Next(count);
        return new PersistedReservations(rng.Next(2) == 0, regs, type, holder);
    }

    /// <summary>A valid file, as the store itself writes it.</summary>
    private static byte[] ValidFile(Random rng, out PersistedReservations state)
    {
        var fs = new FileBytes();
        var store = new FileReservationStore(Directory, VolumeKey, fs);
        state = RandomState(rng);
        store.Save(state);
        return fs.Files[store.Path];
    }

    private static void Recrc(byte[] file)
    {
        if (file.Length < 28) return;
        int end = file.Length - 4;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(end), FileReservationStore.Crc32C(file.AsSpan(0, end)));
    }

    private static void AssertSameState(PersistedReservations expected, PersistedReservations actual)
    {
        Assert.Equal(expected.Aptpl, actual.Aptpl);
        Assert.Equal(expected.Type, actual.Type);
        Assert.Equal(expected.HolderIndex, actual.HolderIndex);
        Assert.Equal(expected.Registrations, actual.Registrations);
    }

    /// <summary>Loads <paramref name="file"/> as the current file and builds the engine from it, as
    /// the daemon does; returns the loaded state, or null when it was refused.</summary>
    private static PersistedReservations? LoadOrRefuse(byte[] file)
    {
        var fs = new FileBytes();
        var store = new FileReservationStore(Directory, VolumeKey, fs);
        fs.Files[store.Path] = file;
        PersistedReservations? loaded;
        try
        {
            loaded = store.Load();
            _ = new VolumeReservations(store, () => [], new NoDrain());
        }
        catch (ReservationStoreException)
        {
            return null;
        }
        Assert.NotNull(loaded);
        // Whole or nothing: an accepted state writes back to a file that reads as the same state.
        var again = new FileBytes();
        var copy = new FileReservationStore(Directory, VolumeKey, again);
        copy.Save(loaded!);
        var reread = new FileReservationStore(Directory, VolumeKey, again).Load();
        AssertSameState(loaded!, reread!);
        return loaded;
    }

    private sealed class NoDrain : ICommandDrain
    {
        public bool DrainCommands(IReadOnlyCollection<ItNexus> nexuses, TimeSpan timeout) => true;
    }

    [Fact]
    public void DamagedStateFilesAreRefusedWholeOrReadWhole()
    {
        int cases = FuzzBudget.Cases();
        int refused = 0, accepted = 0;
        FuzzBudget.Run(output, "FileReservationStore.Load", cases, FuzzBudget.Seed(1701), (rng, i) =>
        {
            var file = ValidFile(rng, out var original);
            switch (i % 5)
            {
                case 0: // truncated anywhere (the file of a crash without fsync)
                {
                    int cut = rng.Next(file.Length);
                    Assert.Null(LoadOrRefuse(file[..cut]));
                    refused++;
                    break;
                }
                case 1: // 1-3 flipped bits, checksum left alone: CRC-32C detects every such error
                {
                    int flips = rng.Next(1, 4);
                    for (int f = 0; f < flips; f++) file[rng.Next(file.Length)] ^= (byte)(1 << rng.Next(8));
                    if (LoadOrRefuse(file) is { } state) { AssertSameState(original, state); accepted++; }
                    else refused++;
                    break;
                }
                case 2: // bytes changed inside the payload and the checksum made to match
                {
                    int changes = rng.Next(1, 4);
                    for (int c = 0; c < changes && file.Length > 28; c++)
                        file[24 + rng.Next(file.Length - 28)] = rng.Next(3) == 0 ? (byte)0xFF : (byte)rng.Next(256);
                    Recrc(file);
                    if (LoadOrRefuse(file) is null) refused++; else accepted++;
                    break;
                }
                case 3: // payload cut or extended with the lengths and checksum made to match
                {
                    int payload = file.Length - 28;
                    int newLength = Math.Max(0, payload + rng.Next(-payload, 9));
                    var body = new byte[newLength];
                    file.AsSpan(24, Math.Min(payload, newLength)).CopyTo(body);
                    if (newLength > payload) rng.NextBytes(body.AsSpan(payload));
                    var forged = new byte[28 + newLength];
                    file.AsSpan(0, 24).CopyTo(forged);
                    BinaryPrimitives.WriteUInt32LittleEndian(forged.AsSpan(20), (uint)newLength);
                    body.CopyTo(forged, 24);
                    Recrc(forged);
                    if (LoadOrRefuse(forged) is null) refused++; else accepted++;
                    break;
                }
                default: // random bytes, sometimes behind a good magic and version
                {
                    var junk = new byte[rng.Next(0, 200)];
                    rng.NextBytes(junk);
                    if (junk.Length >= 12 && rng.Next(2) == 0)
                    {
                        "TSVPRTAB"u8.CopyTo(junk);
                        BinaryPrimitives.WriteUInt32LittleEndian(junk.AsSpan(8), (uint)rng.Next(0, 4));
                        if (junk.Length >= 28 && rng.Next(2) == 0)
                        {
                            BinaryPrimitives.WriteUInt32LittleEndian(junk.AsSpan(20), (uint)(junk.Length - 28));
                            Recrc(junk);
                        }
                    }
                    if (LoadOrRefuse(junk) is null) refused++; else accepted++;
                    break;
                }
            }
        });
        // The run must have reached both outcomes, or its generators prove little.
        Assert.True(refused > cases / 2, $"only {refused} of {cases} refused");
        Assert.True(accepted > 0 || cases < 1000, "no damaged file was accepted whole, so the re-checksummed cases never reached the payload reader");
    }

    [Fact]
    public void UndamagedFilesReadBackExactly()
    {
        var rng = new Random(7);
        for (int i = 0; i < 2000; i++)
        {
            var file = ValidFile(rng, out var original);
            var state = LoadOrRefuse(file);
            Assert.NotNull(state);
            AssertSameState(original, state!);
        }
    }
}
